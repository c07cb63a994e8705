//! `stylevn db init`: builds the SQLite store the tools query from the shipped
//! CSV and Markdown files (see `stylevn::data::db`).

use std::path::PathBuf;

use stylevn::data::db::init_db;

/// Flags of `stylevn db`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(clap::Subcommand, Debug)]
enum DbCommand {
    /// Build (or rebuild) the store database from data/: atomic and idempotent.
    #[command(after_help = "Example:\n  stylevn db init --data data --db data/stylevn.db")]
    Init {
        /// Directory with catalog.csv, stock.csv, orders.csv, order_items.csv, promotions.csv,
        /// size_charts.csv and policies/*.md.
        #[arg(long, value_name = "DIR", default_value = "data")]
        data: PathBuf,
        /// Database file to write (replaced atomically).
        #[arg(long, value_name = "FILE", default_value = "data/stylevn.db")]
        db: PathBuf,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `stylevn db`.
pub fn exec(args: Args) -> anyhow::Result<()> {
    match args.command {
        DbCommand::Init { data, db, json } => {
            let s = init_db(&data, &db)?;
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!(
                    "{}: {} products, {} stock rows, {} orders, {} order items, {} promotions, {} size chart rows, {} policies",
                    db.display(),
                    s.products,
                    s.stock,
                    s.orders,
                    s.order_items,
                    s.promotions,
                    s.size_charts,
                    s.policies
                );
            }
            Ok(())
        }
    }
}
