"""The decoder side of ``.inrz``: NumPy, the standard library, Brotli and constriction only (no torch).

:mod:`~inrkit.compress.decode.container` (the container), :mod:`~inrkit.compress.decode.entropy` and
:mod:`~inrkit.compress.decode.coding` (entropy coding), :mod:`~inrkit.compress.decode.layout` and
:mod:`~inrkit.compress.decode.dictionary` (the network layouts, SINR's seeded dictionary),
:mod:`~inrkit.compress.decode.network` (the decode half of every network codec, :data:`DECODERS`),
:mod:`~inrkit.compress.decode.decoder` (a network file to NumPy weights) and :mod:`~inrkit.compress.decode.latent`
(the ``latent`` image codec's format and decoder). ``tests/test_compress_structure.py`` walks this folder's imports:
nothing here imports torch or :mod:`inrkit.compress.encode`.
"""
