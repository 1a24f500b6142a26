//! `lsmfs inspect` (not yet built).

#[derive(clap::Subcommand, Debug)]
pub enum InspectCmd {
    /// Edits and the recovered Version of a data directory.
    Manifest { dir: std::path::PathBuf },
}

pub fn run(_cmd: InspectCmd) -> i32 {
    eprintln!("lsmfs inspect: not yet implemented");
    2
}
