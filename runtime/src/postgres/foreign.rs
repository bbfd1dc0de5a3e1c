//! Other migration tools' history tables, found by their columns and read for adoption.

use crate::adopt::{AdoptError, ForeignHistory, ForeignTable, Tool};
use crate::backend::ForeignHistories;
use crate::error::Error;

use super::sql;
use super::wire::{get, PgConn};
use super::PgBackend;

impl<C: PgConn> ForeignHistories for PgBackend<C> {
    async fn foreign_tables(&mut self) -> Result<Vec<ForeignTable>, Error> {
        let rows = self
            .query(sql::FOREIGN_TABLES, vec![])
            .await
            .map_err(|e| Error::db("looking for other migration tools' tables", e))?;
        let mut found = Vec::new();
        for row in &rows {
            let schema: String = get(row, 0)?;
            let table: String = get(row, 1)?;
            let columns: Vec<String> = get(row, 2)?;
            let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
            found.extend(ForeignTable::identify(&schema, &table, &columns));
        }
        Ok(found)
    }

    async fn read_foreign(&mut self, table: &ForeignTable) -> Result<ForeignHistory, Error> {
        let Some(tool) = table.tool else {
            return Err(Error::Adopt(AdoptError::UnknownTool {
                table: table.to_string(),
            }));
        };
        let text = sql::read_foreign(tool, &table.schema, &table.table);
        let rows = self
            .query(&text, vec![])
            .await
            .map_err(|e| Error::db(format!("reading {tool}'s history {}", table.qualified()), e))?;
        let context = |e: Error| match e {
            Error::History(m) => {
                Error::History(format!("{tool}'s table {}: {m}", table.qualified()))
            }
            other => other,
        };
        let history = match tool {
            Tool::GolangMigrate => ForeignHistory::GolangMigrate(match rows.first() {
                Some(row) => Some((get(row, 0)?, get(row, 1)?)),
                None => None,
            }),
            Tool::Goose => ForeignHistory::Goose(
                rows.iter()
                    .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?)))
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
            Tool::Sqlx => ForeignHistory::Sqlx(
                rows.iter()
                    .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?, get(r, 3)?)))
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
            Tool::Refinery => ForeignHistory::Refinery(
                rows.iter()
                    .map(|r| Ok((get(r, 0)?, get(r, 1)?, get(r, 2)?)))
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
            Tool::Diesel => ForeignHistory::Diesel(
                rows.iter()
                    .map(|r| get(r, 0))
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
            Tool::Flyway => ForeignHistory::Flyway(
                rows.iter()
                    .map(|r| {
                        Ok((
                            get(r, 0)?,
                            get(r, 1)?,
                            get(r, 2)?,
                            get(r, 3)?,
                            get(r, 4)?,
                            get(r, 5)?,
                        ))
                    })
                    .collect::<Result<_, Error>>()
                    .map_err(context)?,
            ),
        };
        Ok(history)
    }
}
