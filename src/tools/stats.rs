//! `lsmfs stats` (not yet built).

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    pub path: std::path::PathBuf,
}

pub fn run(_args: StatsArgs) -> i32 {
    eprintln!("lsmfs stats: not yet implemented");
    2
}
