-- Alone in its file, so it runs outside a transaction (CONCURRENTLY does not lock writes).
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_key ON users (email);
