-- SQLite builds an index inside the migration's transaction (there is no CONCURRENTLY).
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (email);
