"""The encoder side of ``.inrz`` (torch): the codec registries, the encoders and the file and image workflows.

:mod:`~inrkit.compress.encode.network` (the network codecs, :data:`NETWORK_CODECS`),
:mod:`~inrkit.compress.encode.image` (the image codecs, :data:`IMAGE_CODECS`), :mod:`~inrkit.compress.encode.latent`
(the ``latent`` codec's training), :mod:`~inrkit.compress.encode.sparse` and :mod:`~inrkit.compress.encode.omp`
(SINR's transform), :mod:`~inrkit.compress.encode.finetune`, :mod:`~inrkit.compress.encode.qat`,
:mod:`~inrkit.compress.encode.encoder`, :mod:`~inrkit.compress.encode.model` (files to :class:`inrkit.models.MLP`),
:mod:`~inrkit.compress.encode.api` (target search, files, images) and :mod:`~inrkit.compress.encode.evaluate`
(``eval-codec``). Everything here may import :mod:`inrkit.compress.decode`, never the other way.
"""
