//! Recognising a database another tool migrated, so that `status` can say so and `up` does not
//! apply every migration on top of it.

use std::fmt;

use preflight_runtime::adopt::Tool;

use crate::CliError;

/// A history table of another tool found in the database.
pub(crate) struct Foreign {
    schema: String,
    table: String,
    /// `None`: a known table name with columns no supported tool uses (dbmate's or Rails'
    /// `schema_migrations`, say).
    tool: Option<Tool>,
}

impl fmt::Display for Foreign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.tool {
            Some(tool) => write!(
                f,
                "this database was migrated by {tool} (its history table {}.{} exists) and has no Preflight history yet",
                self.schema, self.table
            ),
            None => write!(
                f,
                "this database was migrated by an unknown tool (a table {}.{} with columns no supported tool uses) and has no Preflight history yet",
                self.schema, self.table
            ),
        }
    }
}

/// The other tools' history tables in the database, recognised by name and columns.
pub(crate) fn detect(client: &mut postgres::Client) -> Result<Vec<Foreign>, CliError> {
    let names: Vec<&str> = Tool::ALL.iter().map(Tool::default_table).collect();
    let rows = client
        .query(
            "SELECT table_schema::text, table_name::text, \
                    array_agg(column_name::text ORDER BY ordinal_position) \
             FROM information_schema.columns \
             WHERE table_name = ANY($1) \
               AND table_schema NOT IN ('pg_catalog', 'information_schema') \
             GROUP BY 1, 2 ORDER BY 1, 2",
            &[&names],
        )
        .map_err(|e| CliError::Connect(format!("cannot look for other tools' tables: {e}")))?;
    Ok(rows
        .iter()
        .map(|row| {
            let table: String = row.get(1);
            let columns: Vec<String> = row.get(2);
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            let tool = Tool::ALL
                .into_iter()
                .find(|t| t.default_table() == table && t.matches(&columns));
            Foreign {
                schema: row.get(0),
                table,
                tool,
            }
        })
        .collect())
}
