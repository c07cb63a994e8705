//! The process-wide TLS crypto provider. reqwest and async-openai are built with
//! rustls but no provider feature (`rustls-no-provider`), so a client built before
//! one is installed panics; every HTTP client in stylevn is made after this.

/// Installs rustls' ring provider for the process, once; later calls do nothing.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means a provider is already installed, which is what we want.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
