//! Shared by the CLI's model-backed tests.

/// A temporary TANDEM_HOME sharing the real model cache (linked, read-only use), so a command that
/// saves measurements or results never writes into the user's own home.
pub fn home_with_models() -> tempfile::TempDir {
    let home = tempfile::tempdir().unwrap();
    let models = std::env::var_os("TANDEM_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/tandem"))
        .join("models");
    std::os::unix::fs::symlink(models, home.path().join("models")).unwrap();
    home
}
