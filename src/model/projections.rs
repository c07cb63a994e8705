//! The seven linear projections of a decoder layer, described once for the Qwen2
//! and Llama families: their names (HF, GGUF), shapes and biases from
//! `config.json`, their order, their block, and which of them read the same input.
//! Every stage that walks a layer's projections (loading, LoRA, merging,
//! quantizing, GGUF import, the tiny fixtures) iterates [`LayerProjection::ALL`].
//!
//! HF checkpoints name them `model.layers.{i}.{block}.{name}` (transformers,
//! `modeling_qwen2.py` / `modeling_llama.py`); llama.cpp's GGUF names them
//! `blk.{i}.{gguf_name}` (llama.cpp, `gguf-py/gguf/constants.py` `MODEL_TENSOR`).

use super::config::ModelConfig;

/// One projection of a decoder layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerProjection {
    /// Query: hidden -> heads x head_dim.
    Q,
    /// Key: hidden -> kv_heads x head_dim.
    K,
    /// Value: hidden -> kv_heads x head_dim.
    V,
    /// Attention output: heads x head_dim -> hidden.
    O,
    /// MLP gate (SiLU): hidden -> intermediate.
    Gate,
    /// MLP up: hidden -> intermediate.
    Up,
    /// MLP down: intermediate -> hidden.
    Down,
}

/// The block of a decoder layer a projection belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// `self_attn`.
    Attention,
    /// `mlp`.
    Mlp,
}

/// The activations a layer's projections read; projections with the same input
/// are scaled together by AWQ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerInput {
    /// `input_layernorm`'s output: read by q, k and v.
    AttentionNorm,
    /// The attention heads' output: read by o.
    AttentionHeads,
    /// `post_attention_layernorm`'s output: read by gate and up.
    MlpNorm,
    /// `silu(gate) * up`: read by down.
    MlpHidden,
}

impl LayerProjection {
    /// Every projection, in HF order (the order of the checkpoint, of PEFT's
    /// `all-linear` and of the engine's slots).
    pub const ALL: [LayerProjection; 7] = [
        LayerProjection::Q,
        LayerProjection::K,
        LayerProjection::V,
        LayerProjection::O,
        LayerProjection::Gate,
        LayerProjection::Up,
        LayerProjection::Down,
    ];

    /// The HF module name (`q_proj`), as PEFT's `target_modules` names it.
    pub fn name(self) -> &'static str {
        match self {
            LayerProjection::Q => "q_proj",
            LayerProjection::K => "k_proj",
            LayerProjection::V => "v_proj",
            LayerProjection::O => "o_proj",
            LayerProjection::Gate => "gate_proj",
            LayerProjection::Up => "up_proj",
            LayerProjection::Down => "down_proj",
        }
    }

    /// The block it belongs to.
    pub fn block(self) -> Block {
        match self {
            LayerProjection::Q | LayerProjection::K | LayerProjection::V | LayerProjection::O => Block::Attention,
            LayerProjection::Gate | LayerProjection::Up | LayerProjection::Down => Block::Mlp,
        }
    }

    /// The activations it reads.
    pub fn input(self) -> LayerInput {
        match self {
            LayerProjection::Q | LayerProjection::K | LayerProjection::V => LayerInput::AttentionNorm,
            LayerProjection::O => LayerInput::AttentionHeads,
            LayerProjection::Gate | LayerProjection::Up => LayerInput::MlpNorm,
            LayerProjection::Down => LayerInput::MlpHidden,
        }
    }

    /// The llama.cpp GGUF tensor name under `blk.{i}` (`attn_q`).
    pub fn gguf_name(self) -> &'static str {
        match self {
            LayerProjection::Q => "attn_q",
            LayerProjection::K => "attn_k",
            LayerProjection::V => "attn_v",
            LayerProjection::O => "attn_output",
            LayerProjection::Gate => "ffn_gate",
            LayerProjection::Up => "ffn_up",
            LayerProjection::Down => "ffn_down",
        }
    }

    /// Its position in [`LayerProjection::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name under `model.layers.{i}` (`self_attn.q_proj`).
    pub fn module(self) -> String {
        format!("{}.{}", self.block().name(), self.name())
    }

    /// The full HF module name in layer `layer` (`model.layers.3.self_attn.q_proj`).
    pub fn in_layer(self, layer: usize) -> String {
        format!("model.layers.{layer}.{}", self.module())
    }

    /// The weight's `(out, in)` in a model of `config`.
    pub fn shape(self, config: &ModelConfig) -> (usize, usize) {
        let (h, hd) = (config.hidden_size, config.head_dim());
        let (q, kv, i) = (config.num_attention_heads * hd, config.num_kv_heads() * hd, config.intermediate_size);
        match self {
            LayerProjection::Q => (q, h),
            LayerProjection::K | LayerProjection::V => (kv, h),
            LayerProjection::O => (h, q),
            LayerProjection::Gate | LayerProjection::Up => (i, h),
            LayerProjection::Down => (h, i),
        }
    }

    /// Whether it carries a bias in a model of `config`.
    pub fn has_bias(self, config: &ModelConfig) -> bool {
        match self {
            LayerProjection::Q | LayerProjection::K | LayerProjection::V => config.qkv_bias(),
            LayerProjection::O => config.o_bias(),
            LayerProjection::Gate | LayerProjection::Up | LayerProjection::Down => config.mlp_bias,
        }
    }

    /// The projection called `name` (`q_proj`).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The projection under `model.layers.{i}` called `module` (`self_attn.q_proj`).
    pub fn from_module(module: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.module() == module)
    }

    /// The projection llama.cpp calls `gguf_name` (`attn_q`).
    pub fn from_gguf(gguf_name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.gguf_name() == gguf_name)
    }
}

impl Block {
    /// The HF module name of the block (`self_attn`).
    pub fn name(self) -> &'static str {
        match self {
            Block::Attention => "self_attn",
            Block::Mlp => "mlp",
        }
    }
}

impl LayerInput {
    /// Every input, in the order the layer computes them.
    pub const ALL: [LayerInput; 4] =
        [LayerInput::AttentionNorm, LayerInput::AttentionHeads, LayerInput::MlpNorm, LayerInput::MlpHidden];

    /// The projections that read this input, in [`LayerProjection::ALL`] order.
    pub fn readers(self) -> impl Iterator<Item = LayerProjection> {
        LayerProjection::ALL.into_iter().filter(move |p| p.input() == self)
    }

    /// The first projection that reads it (where its value can be observed).
    pub fn first_reader(self) -> LayerProjection {
        match self {
            LayerInput::AttentionNorm => LayerProjection::Q,
            LayerInput::AttentionHeads => LayerProjection::O,
            LayerInput::MlpNorm => LayerProjection::Gate,
            LayerInput::MlpHidden => LayerProjection::Down,
        }
    }

    /// Its position in [`LayerInput::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_names_are_hf_and_gguf() {
        let modules: Vec<String> = LayerProjection::ALL.iter().map(|p| p.in_layer(2)).collect();
        assert_eq!(
            modules,
            [
                "model.layers.2.self_attn.q_proj",
                "model.layers.2.self_attn.k_proj",
                "model.layers.2.self_attn.v_proj",
                "model.layers.2.self_attn.o_proj",
                "model.layers.2.mlp.gate_proj",
                "model.layers.2.mlp.up_proj",
                "model.layers.2.mlp.down_proj",
            ]
        );
        for (i, p) in LayerProjection::ALL.into_iter().enumerate() {
            assert_eq!(p.index(), i);
            assert_eq!(LayerProjection::from_name(p.name()), Some(p));
            assert_eq!(LayerProjection::from_module(&p.module()), Some(p));
            assert_eq!(LayerProjection::from_gguf(p.gguf_name()), Some(p));
        }
        assert_eq!(LayerProjection::from_name("lm_head"), None);
    }

    #[test]
    fn inputs_group_qkv_o_gate_up_down() {
        let groups: Vec<Vec<&str>> =
            LayerInput::ALL.iter().map(|i| i.readers().map(LayerProjection::name).collect()).collect();
        assert_eq!(
            groups,
            [vec!["q_proj", "k_proj", "v_proj"], vec!["o_proj"], vec!["gate_proj", "up_proj"], vec!["down_proj"]]
        );
        for (i, input) in LayerInput::ALL.into_iter().enumerate() {
            assert_eq!(input.index(), i);
            assert_eq!(input.readers().next(), Some(input.first_reader()));
        }
    }

    #[test]
    fn shapes_follow_the_config() {
        // Qwen2.5-0.5B: hidden 896, 14 heads of 64, 2 kv heads, intermediate 4864.
        let config: ModelConfig = serde_json::from_value(serde_json::json!({
            "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896, "intermediate_size": 4864,
            "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "rms_norm_eps": 1e-6
        }))
        .unwrap();
        let shapes: Vec<(usize, usize)> = LayerProjection::ALL.iter().map(|p| p.shape(&config)).collect();
        assert_eq!(shapes, [(896, 896), (128, 896), (128, 896), (896, 896), (4864, 896), (4864, 896), (896, 4864)]);
        let biases: Vec<bool> = LayerProjection::ALL.iter().map(|p| p.has_bias(&config)).collect();
        assert_eq!(biases, [true, true, true, false, false, false, false]);
    }
}
