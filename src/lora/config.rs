//! LoRA hyper-parameters and PEFT's `adapter_config.json` (huggingface/peft,
//! src/peft/tuners/lora/config.py): written with sorted keys and indent 2, with
//! every field vLLM and `PeftModel.from_pretrained` read.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::model::projections::LayerProjection;
use crate::{Error, Result};

/// How adapters are attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    /// Rank `r`.
    pub r: usize,
    /// `lora_alpha`; the update is scaled by `alpha / r` (rsLoRA: `alpha / sqrt(r)`).
    pub alpha: f64,
    /// Dropout on the adapter's input during training.
    pub dropout: f32,
    /// Projections to adapt: names among q_proj..down_proj, or `all-linear`.
    pub target_modules: Vec<String>,
    /// rsLoRA scaling.
    pub use_rslora: bool,
    /// Decoder layers that get adapters (PEFT's `layers_to_transform`); empty: every layer.
    #[serde(default)]
    pub layers_to_transform: Vec<usize>,
    /// Token ids whose LM-head rows are trained in full (PEFT's
    /// `trainable_token_indices` on `lm_head`); empty: none.
    #[serde(default)]
    pub trainable_token_indices: Vec<u32>,
}

impl LoraConfig {
    /// The scale applied to `B A x`.
    pub fn scale(&self) -> f64 {
        if self.use_rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// The projection names (`q_proj`...) the config selects, in HF order.
    pub fn targets(&self) -> Result<Vec<&'static str>> {
        let names = LayerProjection::ALL.map(LayerProjection::name);
        if self.target_modules.iter().any(|t| t == "all-linear") {
            return Ok(names.to_vec());
        }
        for t in &self.target_modules {
            if LayerProjection::from_name(t).is_none() {
                return Err(Error::msg(format!(
                    "unknown LoRA target module `{t}` (use all-linear or any of {})",
                    names.join(", ")
                )));
            }
        }
        Ok(names.into_iter().filter(|p| self.target_modules.iter().any(|t| t == p)).collect())
    }

    /// Whether decoder layer `layer` gets adapters.
    pub fn adapts_layer(&self, layer: usize) -> bool {
        self.layers_to_transform.is_empty() || self.layers_to_transform.contains(&layer)
    }

    /// The lowest decoder layer with adapters: the backward pass stops there.
    pub fn lowest_layer(&self) -> usize {
        self.layers_to_transform.iter().copied().min().unwrap_or(0)
    }

    /// PEFT's `adapter_config.json` for this adapter on `base_model`.
    pub fn peft_json(&self, base_model: &str) -> Result<String> {
        let targets = self.targets()?;
        // serde_json with preserve_order keeps insertion order: insert sorted.
        let mut fields: Vec<(&str, serde_json::Value)> = vec![
            ("alpha_pattern", json!({})),
            ("base_model_name_or_path", json!(base_model)),
            ("bias", json!("none")),
            ("fan_in_fan_out", json!(false)),
            ("inference_mode", json!(true)),
            ("init_lora_weights", json!(true)),
            ("lora_alpha", json!(self.alpha)),
            ("lora_dropout", json!(self.dropout)),
            ("modules_to_save", json!(null)),
            ("peft_type", json!("LORA")),
            ("r", json!(self.r)),
            ("rank_pattern", json!({})),
            ("target_modules", json!(targets)),
            ("task_type", json!("CAUSAL_LM")),
            ("use_dora", json!(false)),
            ("use_rslora", json!(self.use_rslora)),
        ];
        if !self.layers_to_transform.is_empty() {
            // PEFT finds the index after `model.layers.` itself when layers_pattern is null.
            fields.push(("layers_pattern", json!(null)));
            fields.push(("layers_to_transform", json!(self.layers_to_transform)));
        }
        if !self.trainable_token_indices.is_empty() {
            fields.push(("trainable_token_indices", json!({ "lm_head": self.trainable_token_indices })));
        }
        fields.sort_by(|a, b| a.0.cmp(b.0));
        let map: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        serde_json::to_string_pretty(&map).map_err(|e| Error::msg(e.to_string()))
    }

    /// Reads a PEFT `adapter_config.json` (LoRA only; DoRA and modules_to_save refused).
    pub fn from_peft_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::bad_input(path, Some(e.line()), e.to_string()))?;
        let bad = |field: &str, why: &str| Error::bad_input(path, None, format!("field `{field}`: {why}"));
        if v["peft_type"] != "LORA" {
            return Err(bad("peft_type", "only LORA adapters are supported"));
        }
        if v["use_dora"] == true {
            return Err(bad("use_dora", "DoRA adapters are not supported"));
        }
        if !v["modules_to_save"].is_null() {
            return Err(bad("modules_to_save", "must be null"));
        }
        let targets = match &v["target_modules"] {
            serde_json::Value::Array(a) => a.iter().filter_map(|t| t.as_str().map(str::to_string)).collect(),
            serde_json::Value::String(s) => vec![s.clone()],
            _ => return Err(bad("target_modules", "expected a list")),
        };
        let layers = match &v["layers_to_transform"] {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Number(n) => {
                vec![n.as_u64().ok_or_else(|| bad("layers_to_transform", "expected a layer index"))? as usize]
            }
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_u64().map(|i| i as usize).ok_or_else(|| bad("layers_to_transform", "expected layer indexes"))
                })
                .collect::<Result<_>>()?,
            _ => return Err(bad("layers_to_transform", "expected null, an index or a list of indexes")),
        };
        let tokens = match &v["trainable_token_indices"] {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::Object(m) if m.keys().all(|k| k == "lm_head") => match &m.get("lm_head") {
                Some(serde_json::Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_u64()
                            .and_then(|i| u32::try_from(i).ok())
                            .ok_or_else(|| bad("trainable_token_indices", "expected token ids"))
                    })
                    .collect::<Result<_>>()?,
                _ => return Err(bad("trainable_token_indices", "expected {\"lm_head\": [token ids]}")),
            },
            _ => {
                return Err(bad(
                    "trainable_token_indices",
                    "only LM-head rows are supported ({\"lm_head\": [token ids]}), not embedding rows",
                ))
            }
        };
        Ok(LoraConfig {
            layers_to_transform: layers,
            trainable_token_indices: tokens,
            r: v["r"].as_u64().ok_or_else(|| bad("r", "expected an integer"))? as usize,
            alpha: v["lora_alpha"].as_f64().ok_or_else(|| bad("lora_alpha", "expected a number"))?,
            dropout: v["lora_dropout"].as_f64().unwrap_or(0.0) as f32,
            target_modules: targets,
            use_rslora: v["use_rslora"].as_bool().unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(layers: Vec<usize>) -> LoraConfig {
        LoraConfig {
            r: 8,
            alpha: 16.0,
            dropout: 0.0,
            target_modules: vec!["all-linear".into()],
            use_rslora: false,
            layers_to_transform: layers,
            trainable_token_indices: Vec::new(),
        }
    }

    fn read(json: &str) -> Result<LoraConfig> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("adapter_config.json");
        std::fs::write(&path, json).unwrap();
        LoraConfig::from_peft_file(&path)
    }

    /// PEFT's `layers_to_transform` (with `layers_pattern` null, as PEFT writes it) round
    /// trips; PEFT's single-index form reads as a list; an adapter on every layer
    /// writes neither key, so its file is the same as before the field existed.
    #[test]
    fn layers_to_transform_round_trips_in_peft_form() {
        let top = config(vec![22, 23]);
        let json = top.peft_json("base").unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["layers_to_transform"], json!([22, 23]));
        assert!(v.as_object().unwrap().contains_key("layers_pattern") && v["layers_pattern"].is_null());
        let mut back = read(&json).unwrap();
        back.target_modules = top.target_modules.clone();
        assert_eq!(back, top);
        assert_eq!((top.adapts_layer(21), top.adapts_layer(22), top.lowest_layer()), (false, true, 22));

        let all = config(vec![]);
        let json = all.peft_json("base").unwrap();
        assert!(!json.contains("layers_to_transform") && !json.contains("layers_pattern"));
        assert_eq!((all.adapts_layer(0), all.lowest_layer()), (true, 0));

        let one = json.replacen('{', "{\n  \"layers_to_transform\": 5,", 1);
        assert_eq!(read(&one).unwrap().layers_to_transform, vec![5]);
        let bad = json.replacen('{', "{\n  \"layers_to_transform\": \"top\",", 1);
        assert!(read(&bad).unwrap_err().to_string().contains("layers_to_transform"));
    }

    /// LM-head token rows are written as PEFT writes them for `{"lm_head": [...]}`
    /// (checked against peft 0.21's `save_pretrained`) and read back; embedding rows,
    /// which this crate does not train, are refused naming the field.
    #[test]
    fn trainable_token_indices_round_trip_in_peft_form() {
        let mut c = config(vec![23]);
        c.trainable_token_indices = vec![151657, 151658];
        let json = c.peft_json("base").unwrap();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["trainable_token_indices"], json!({"lm_head": [151657, 151658]}));
        let mut back = read(&json).unwrap();
        back.target_modules = c.target_modules.clone();
        assert_eq!(back, c);
        assert!(!config(vec![]).peft_json("base").unwrap().contains("trainable_token_indices"));
        for other in ["[5, 6]", "{\"embed_tokens\": [5]}", "{\"lm_head\": [-1]}"] {
            let text = json.replace("{\n    \"lm_head\": [\n      151657,\n      151658\n    ]\n  }", other);
            assert_ne!(text, json, "the replacement must apply");
            assert!(read(&text).unwrap_err().to_string().contains("trainable_token_indices"), "{other}");
        }
    }
}
