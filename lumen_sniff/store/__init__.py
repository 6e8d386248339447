"""SQLite store: schema, migrations, batched writer, queries, rollups, retention."""
