//! `lsmfs check` (not yet built).

#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    pub path: std::path::PathBuf,
}

pub fn run(_args: CheckArgs) -> i32 {
    eprintln!("lsmfs check: not yet implemented");
    2
}
