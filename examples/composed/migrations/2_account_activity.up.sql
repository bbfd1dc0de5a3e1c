-- preflight:requires audit 1
-- Needs the audit library's table: its migration 1 runs first, whatever the listed order.
CREATE VIEW account_activity AS
SELECT a.name, e.action, e.at
FROM accounts a
JOIN audit_events e ON e.actor = a.name;
