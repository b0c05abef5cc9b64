"""Shared fixtures. Tests run against real PostgreSQL and Redis (see Makefile TEST_ENV)."""
