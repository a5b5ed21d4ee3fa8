"""Runs: the run store (SQLite registry and status lifecycle), artifacts, the predictions-frame
schema, one stored run end to end (runner), background jobs."""
