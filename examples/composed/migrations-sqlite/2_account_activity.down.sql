DROP VIEW account_activity;
