//! (being written)
pub struct PosixEnv;
impl PosixEnv {
    pub fn new() -> PosixEnv {
        PosixEnv
    }
}
impl Default for PosixEnv {
    fn default() -> Self {
        Self::new()
    }
}
