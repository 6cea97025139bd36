"""The weekly run for locality teams: tiers, week-on-week change, flags, pathways, outputs."""
