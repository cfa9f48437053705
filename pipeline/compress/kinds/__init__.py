"""The registered compressors, one module per variant kind; importing a module registers its kind.

To add a kind: write its module (see sepipe.compress.base) and import it here. The order is the order
`--help` texts and errors list the kinds in.
"""

from sepipe.compress.kinds import ptq, weight, block, unit, offline, cluster, exit  # noqa: F401
