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
    # Copies on nodes (models_registry.services.copies, .transfer, .common.sync_origin): status details and
    # the reasons of their transitions.
    "copy.waiting": gettext_noop("waiting to copy from node %(node)s"),
    "copy.started_again": gettext_noop("started again: %(reason)s"),
    "copy.cancelled": gettext_noop("cancelled by %(who)s"),
    "copy.removing": gettext_noop("removing its files"),
    "copy.removal_failed_node": gettext_noop("removal failed: node %(node)s: %(error)s"),
    "copy.removal_failed": gettext_noop("removal failed: %(error)s"),
    "copy.hashing": gettext_noop("hashing the files on the node"),
    "copy.planning": gettext_noop("planning the transfer"),
    "copy.failed": gettext_noop("copy failed: %(error)s"),
    "copy.version_not_verified": gettext_noop("%(version)s is not verified any more"),
    "copy.source_not_ready": gettext_noop("the source copy is not ready any more; ask for the copy again"),
    "copy.streaming": gettext_noop("streaming %(count)s file(s) from node %(node)s"),
    "copy.streaming_checking": gettext_noop("streaming %(count)s file(s) from node %(node)s; checking %(present)s "
                                            "already there"),
    "copy.files_failed": gettext_noop("%(count)s file(s) could not be copied: %(listing)s"),
    "copy.checking_failed": gettext_noop("checking them failed: %(error)s"),
    "copy.written": gettext_noop("%(count)s file(s) written; hashing them on the node"),
    "copy.verified": gettext_noop("%(count)s file(s) verified on the node"),
    "copy.verified_kept": gettext_noop("%(count)s file(s) verified on the node, %(kept)s kept from before"),
    "copy.digest_differs": gettext_noop("sha256 %(digest)s… differs from the manifest's %(expected)s…"),
    "copy.origin_created": gettext_noop("the version's directory: %(reason)s"),
    "copy.origin_follows": gettext_noop("the version is %(status)s: %(reason)s"),
    # Why a copy cannot be made (services.copies.request_copy): shown to the requester in their language,
    # and stored as the reason of a refused copy (jobs.weights) in the worker's, English.
    "copy.unverified": gettext_noop("%(version)s is %(status)s: verify it first, its verified manifest is what a "
                                    "copy is checked against"),
    "copy.not_writable": gettext_noop("node %(node)s: %(where)s is not writable by the login; choose another path"),
    "copy.no_room": gettext_noop("node %(node)s has %(free)s bytes free on the filesystem of %(where)s; the copy "
                                 "needs %(needed)s bytes"),
    "copy.already_ready": gettext_noop("node %(node)s already holds a ready copy of %(version)s at %(path)s"),
    "copy.busy": gettext_noop("the copy of %(version)s on node %(node)s is %(status)s"),
    "copy.elsewhere": gettext_noop("node %(node)s already has a copy of %(version)s at %(path)s: remove it first to "
                                   "copy elsewhere"),
    "copy.no_source": gettext_noop("no other node holds a ready copy of %(version)s to copy from"),
    "copy.cannot_ask": gettext_noop("node %(node)s cannot be asked about %(path)s: %(error)s"),
    "copy.raced": gettext_noop("a copy of %(version)s on node %(node)s was asked for meanwhile"),
}


def register() -> None:
    messages.register(MESSAGES)
