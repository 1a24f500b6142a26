//! `lsmfs compact` (not yet built).

#[derive(clap::Args, Debug)]
pub struct CompactArgs {
    pub path: std::path::PathBuf,
}

pub fn run(_args: CompactArgs) -> i32 {
    eprintln!("lsmfs compact: not yet implemented");
    2
}
