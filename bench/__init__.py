"""The side-by-side benchmark (SPEC section 8): `make bench` / `python -m bench --help`."""
