"""What feeds the contract: the synthetic borough and the adapters for real extracts.

``synthetic`` generates a borough with known true risk; ``ingest`` maps OMOP CDM, Synthea
and contract-shaped extracts, pseudonymises them and writes validated contract tables.
Everything downstream (``features.engine``, labels, training, the weekly run) reads only
the contract tables these write, never a source directly.
"""
