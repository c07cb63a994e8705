//! `stylevn db init`: builds the SQLite store the tools query from the shipped
//! CSV and Markdown files (see `stylevn::data::db`). `stylevn db call`: runs one of
//! the assistant's tools against it and prints the result the model would read.
//! `stylevn db tools`: prints the store's tool schemas (what `evals/tools.json` holds).

use std::path::PathBuf;

use anyhow::Context;
use stylevn::data::db::{init_db, open_db};
use stylevn::data::tools::ToolBox;

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
    /// Run one of the assistant's tools against the store and print its result: the
    /// JSON a tool message carries to the model (as `synth` and `serve` write it).
    #[command(after_help = "Example:\n  stylevn db call get_order_status '{\"order_id\": \"DH251661\"}'")]
    Call {
        /// Tool name (get_order_status, get_stock, search_products, get_promotions,
        /// get_size_chart, get_policy).
        tool: String,
        /// Arguments, a JSON object as the model writes them.
        #[arg(default_value = "{}")]
        arguments: String,
        /// Store database (from `stylevn db init`).
        #[arg(long, value_name = "FILE", default_value = "data/stylevn.db")]
        db: PathBuf,
    },
    /// Print the store's OpenAI `tools` array (its own categories and policy topics as
    /// the choices): the schemas `synth` writes and `serve` offers, for `eval --tools`.
    #[command(after_help = "Example:\n  stylevn db tools --db data/stylevn.db > evals/tools.json")]
    Tools {
        /// Store database (from `stylevn db init`).
        #[arg(long, value_name = "FILE", default_value = "data/stylevn.db")]
        db: PathBuf,
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
        DbCommand::Call { tool, arguments, db } => {
            let args: serde_json::Value = serde_json::from_str(&arguments)
                .with_context(|| format!("arguments of {tool}: not JSON: {arguments}"))?;
            anyhow::ensure!(args.is_object(), "arguments of {tool}: expected a JSON object, got {arguments}");
            let tools = ToolBox::at_store_date(open_db(&db)?)?;
            println!("{}", tools.call(&tool, &args)?);
            Ok(())
        }
        DbCommand::Tools { db } => {
            let tools = ToolBox::at_store_date(open_db(&db)?)?;
            println!("{}", serde_json::to_string_pretty(&tools.schemas())?);
            Ok(())
        }
    }
}
