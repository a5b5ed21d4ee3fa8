"""Benchmarks of MMoE Lab against peer MMoE implementations (see bench/README.md)."""
