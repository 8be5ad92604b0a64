"""Every rule of the catalogue proved end to end: generated fixtures, each scanned by the CLI in a fresh process.

The unit tests run in one process where every reader and analyzer is already imported; the real CLI
imports them lazily. A check that is only reached because some other test imported its module is
invisible there and lost in production. Here each fixture is scanned by ``modelshield scan`` in its
own new interpreter, with a clean environment (see :mod:`tests.e2e.runner`).
"""
