"""A tiny random-weight llama model in GGUF, small enough to write in milliseconds and serve on CPU.

The model is a real llama architecture (2 layers, 64 wide, 4 heads, feed-forward 128, 512-token
context, F32 weights: 123,200 parameters, about 500 KB) with a SentencePiece ("llama") vocabulary
of 320 tokens: ``<unk>``, ``<s>``, ``</s>``, the 256 byte-fallback tokens ``<0x00>``..``<0xFF>``
and 61 word pieces. llama.cpp aborts on a vocabulary with a repeated token string, so every string
is unique (checked here). It answers nonsense, and random weights make it emit ``</s>`` at once:
send ``"ignore_eos": true`` to get the number of tokens you ask for.
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

__all__ = [
    "BOS_ID",
    "BYTE_TOKEN_IDS",
    "CONTEXT_LENGTH",
    "EOS_ID",
    "N_VOCAB",
    "NON_ASCII_BYTE_TOKEN_IDS",
    "UNK_ID",
    "tiny_vocabulary",
    "write_tiny_llama",
]

N_LAYERS = 2
N_EMBD = 64
N_HEAD = 4
N_FF = 128
CONTEXT_LENGTH = 512
UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
#: Ids of the byte-fallback tokens ``<0x00>``..``<0xFF>``, in byte order.
BYTE_TOKEN_IDS = range(3, 3 + 256)
#: The byte tokens that are not a whole UTF-8 character by themselves (``<0x80>``..``<0xFF>``).
#: llama-server holds such bytes back while a streamed character is incomplete, so a test that
#: counts one content chunk per token bans them with ``logit_bias``.
NON_ASCII_BYTE_TOKEN_IDS = range(3 + 0x80, 3 + 256)

# 61 word pieces ("▁" is SentencePiece's word boundary), all distinct from each other and from the
# byte and control tokens.
_PIECES = (
    "▁",
    "▁t",
    "▁a",
    "▁the",
    "▁of",
    "▁and",
    "▁to",
    "▁in",
    "▁is",
    "▁it",
    "▁on",
    "▁for",
    "▁with",
    "▁as",
    "▁at",
    "▁by",
    "▁be",
    "▁this",
    "▁that",
    "▁from",
    "▁or",
    "▁an",
    "▁are",
    "▁was",
    "▁not",
    "▁but",
    "▁all",
    "▁we",
    "▁you",
    "▁can",
    "▁model",
    "▁token",
    "▁serve",
    "▁boom",
    "▁console",
    "▁engine",
    "▁hello",
    "▁world",
    "he",
    "in",
    "er",
    "an",
    "re",
    "on",
    "at",
    "en",
    "nd",
    "ti",
    "es",
    "or",
    "te",
    "of",
    "ed",
    "is",
    "it",
    "al",
    "ar",
    "st",
    "to",
    "nt",
    "ng",
)
N_VOCAB = 3 + 256 + len(_PIECES)

# The chat template llama-server would fall back to without one; written down so the prompt format
# does not depend on the build's default.
_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_vocabulary() -> tuple[list[str], list[float], list[int]]:
    """The token strings, SentencePiece scores and GGUF token types of the 320-token vocabulary."""
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{byte:02X}>" for byte in range(256)] + list(_PIECES)
    token_type = gguf.TokenType
    types = [int(token_type.UNKNOWN), int(token_type.CONTROL), int(token_type.CONTROL)]
    types += [int(token_type.BYTE)] * 256 + [int(token_type.NORMAL)] * len(_PIECES)
    # Longer pieces score higher, so the SentencePiece tokenizer prefers whole words.
    scores = [0.0] * (3 + 256) + [float(len(piece)) - index / 100.0 for index, piece in enumerate(_PIECES)]
    if len(set(tokens)) != len(tokens):  # llama.cpp aborts on a repeated token string
        raise AssertionError("the tiny vocabulary repeats a token string")
    return tokens, scores, types


def write_tiny_llama(path: Path, seed: int = 0) -> Path:
    """Write the tiny random-weight llama model to ``path`` and return ``path``.

    Deterministic: the same ``seed`` gives the same bytes. Weights are normal with standard
    deviation 0.02 (norm weights are ones), in F32.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def weights(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("boom-tiny-llama")
    writer.add_context_length(CONTEXT_LENGTH)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYERS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_rope_dimension_count(N_EMBD // N_HEAD)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens, scores, types = tiny_vocabulary()
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK_ID)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(_CHATML_TEMPLATE)

    # numpy shapes are GGML's ``ne`` reversed: token_embd is ne=[n_embd, n_vocab].
    writer.add_tensor("token_embd.weight", weights(N_VOCAB, N_EMBD))
    for layer in range(N_LAYERS):
        prefix = f"blk.{layer}."
        writer.add_tensor(prefix + "attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(prefix + name + ".weight", weights(N_EMBD, N_EMBD))
        writer.add_tensor(prefix + "ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(prefix + "ffn_gate.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(prefix + "ffn_up.weight", weights(N_FF, N_EMBD))
        writer.add_tensor(prefix + "ffn_down.weight", weights(N_EMBD, N_FF))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", weights(N_VOCAB, N_EMBD))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
