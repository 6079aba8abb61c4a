"""Native (Rust) strace readers, rendered from the Python reader's tables.

The Rust sources in ``templates/`` are ports of the Python reader
(:mod:`sentinel_jax.data.strace` and its helpers); the parts that depend on
the data tables are rendered here (:mod:`.tables`, :mod:`.rust_tags`). Two
programs use them: the live monitor's reader (:mod:`.build` builds it once
into a cache, :mod:`.records` runs it and reads its binary records) and the
standalone detector of the symbolic stage.
"""
