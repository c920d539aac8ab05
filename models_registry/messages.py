"""The sentences the model registry records (a version's status detail and the reasons of its
transitions), registered in console.core.messages so that pages render them in the reader's language.
Each template is the exact English the code writes."""

from django.utils.translation import gettext_noop

from console.core import messages

MESSAGES = {
    "version.verify_restarted": gettext_noop("restarted: the previous verification stopped reporting progress"),
    "version.verifying": gettext_noop("computing sha256 on the node"),
    "version.no_files": gettext_noop("verification failed: no files on a node to verify"),
    "version.verify_node_failed": gettext_noop("verification failed: node %(node)s: %(error)s"),
    "version.verify_failed": gettext_noop("verification failed: %(error)s"),
    "version.verify_files_failed": gettext_noop("verification failed for %(count)s of %(total)s files: %(listing)s"),
    "version.manifest_differs": gettext_noop("verification failed: the manifest differs from the verified one"),
    "version.verified": gettext_noop("%(count)s files verified (%(method)s)"),
    "version.waiting_inspection": gettext_noop("waiting for the inspection of %(path)s on node %(node)s"),
    "version.import_failed": gettext_noop("import failed: %(reason)s"),
    "version.node_error": gettext_noop("node %(node)s: %(error)s"),
    "version.format_mismatch": gettext_noop("format given as %(given)s; the files are %(detected)s"),
    "version.quantization_mismatch": gettext_noop("quantization given as %(given)s; the files look like "
                                                  "%(detected)s"),
    "version.deprecated": gettext_noop("deprecated"),
    "version.reinstated": gettext_noop("reinstated"),
}


def register() -> None:
    messages.register(MESSAGES)
