"""Source adapters: OMOP CDM, Synthea and contract-shaped extracts into the contract.

``features.sources.ingest.pipeline.ingest`` reads an extract, maps it, pseudonymises identifiers,
writes and validates the contract tables and writes a data-quality report.
"""
