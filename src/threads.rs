//! The CPU thread count of candle's kernels, worked out once per process.
//!
//! candle's CPU matmul asks for its thread count on every call, and while
//! `RAYON_NUM_THREADS` is unset it works it out again each time, parsing
//! `/proc/cpuinfo` (candle-core 0.11, `utils::get_num_threads`). A batched decode
//! step of 16 sequences makes over a thousand matmul calls; setting the variable
//! cut its time by 12% (`cargo bench --bench decode -- decode_16`) and lifted
//! `serve`'s 16-stream throughput from under 3x one stream's to 3.5x
//! (benches/load_serve.py), the lookup becoming one read of the environment.

/// Sets `RAYON_NUM_THREADS` to the count candle would use (its physical cores)
/// unless the user set it. Call first thing in `main`, before any thread starts;
/// rayon's global pool follows the same variable.
pub fn fix_cpu_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", candle_core::utils::get_num_threads().to_string());
    }
}
