//! Config files and the flags over them, one pattern for every subcommand: the
//! library owns each stage's config struct and its defaults; the subcommand reads
//! its TOML file (its `--config`, or the file in `configs/` named after it when that
//! exists) and every flag of a field's name, declared with [`config_flags!`],
//! overrides that field.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::de::DeserializeOwned;

/// Flags that override fields of a config struct (made by [`config_flags!`]).
pub trait Overrides {
    /// The config struct the flags override.
    type Config: DeserializeOwned + Default;
    /// Sets each field whose flag was given.
    fn apply(self, config: &mut Self::Config);
}

/// Loads the subcommand's config: `explicit` if given (it must exist), else
/// `configs/<default_name>` when present, else the type's defaults.
pub fn load<T: DeserializeOwned + Default>(explicit: Option<&Path>, default_name: &str) -> anyhow::Result<T> {
    let path: PathBuf = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            let p = Path::new("configs").join(default_name);
            if !p.is_file() {
                return Ok(T::default());
            }
            p
        }
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config {}", path.display()))
}

/// The subcommand's config ([`load`]) with `flags` over it.
pub fn resolve<F: Overrides>(explicit: Option<&Path>, default_name: &str, flags: F) -> anyhow::Result<F::Config> {
    let mut config = load(explicit, default_name)?;
    flags.apply(&mut config);
    Ok(config)
}

/// Declares a subcommand's override flags: a `clap::Args` struct with one `--flag`
/// (an `Option` of the listed type) per config field, and its [`Overrides`], which
/// sets the field of each flag given. The flag is named after the field; a field of
/// a TOML section, or one whose flag has another name, follows `=>`
/// (`min_rouge_l => thresholds.min_rouge_l: f64`). A field the config lacks, or a
/// type that does not convert into the field's, is a compile error.
macro_rules! config_flags {
    (
        $(#[$meta:meta])*
        struct $name:ident for $config:ty {
            $(
                $(#[$field_meta:meta])*
                $flag:ident $(=> $($path:ident).+)? : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(clap::Args, Debug)]
        struct $name {
            $(
                $(#[$field_meta])*
                #[arg(long)]
                $flag: Option<$ty>,
            )*
        }

        impl $crate::config::Overrides for $name {
            type Config = $config;
            // A flag of the field's own type converts into it unchanged.
            #[allow(clippy::useless_conversion)]
            fn apply(self, config: &mut $config) {
                $(
                    if let Some(value) = self.$flag {
                        $crate::config::config_flags!(@set config, value, $flag $(, $($path).+)?);
                    }
                )*
            }
        }
    };
    (@set $config:ident, $value:ident, $flag:ident) => {
        $config.$flag = $value.into()
    };
    (@set $config:ident, $value:ident, $flag:ident, $($path:ident).+) => {
        $config.$($path).+ = $value.into()
    };
}
pub(crate) use config_flags;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Demo {
        seed: u64,
        name: String,
        strict: bool,
        section: Section,
    }

    #[derive(Debug, PartialEq, serde::Deserialize, Default)]
    #[serde(default, deny_unknown_fields)]
    struct Section {
        limit: Option<f64>,
    }

    impl Default for Demo {
        fn default() -> Self {
            Demo { seed: 7, name: "demo".into(), strict: false, section: Section::default() }
        }
    }

    config_flags! {
        /// Flags of the demo config.
        struct DemoFlags for Demo {
            /// Seed.
            seed: u64,
            /// Name.
            name: String,
            /// Strict.
            #[arg(num_args = 0..=1, default_missing_value = "true")]
            strict: bool,
            /// The section's limit.
            section_limit => section.limit: f64,
        }
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        flags: DemoFlags,
    }

    fn resolved(file: &str, flags: &[&str]) -> Demo {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("demo.toml");
        std::fs::write(&path, file).unwrap();
        let cli = Cli::try_parse_from(std::iter::once("demo").chain(flags.iter().copied())).unwrap();
        resolve(Some(&path), "demo.toml", cli.flags).unwrap()
    }

    #[test]
    fn flags_override_the_file_which_overrides_the_defaults() {
        let none = resolved("", &[]);
        assert_eq!(none, Demo::default());
        let file = resolved("seed = 3\n[section]\nlimit = 0.5\n", &[]);
        assert_eq!(file, Demo { seed: 3, section: Section { limit: Some(0.5) }, ..Demo::default() });
        let flags = resolved(
            "seed = 3\nname = \"file\"\n[section]\nlimit = 0.5\n",
            &["--seed", "9", "--strict", "--section-limit", "0.25"],
        );
        assert_eq!(flags, Demo { seed: 9, name: "file".into(), strict: true, section: Section { limit: Some(0.25) } });
        assert!(!resolved("strict = true", &["--strict", "false"]).strict);
    }
}
