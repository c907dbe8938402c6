"""Storage for the workbench: SQLAlchemy models, engine factory (SQLite pragmas, PostgreSQL), migrations."""
