"""The local profile: real Valkey and PostgreSQL from pip wheels plus the three functions."""
