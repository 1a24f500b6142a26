//! `lsmfs bench` (not yet built).

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long)]
    pub db: Option<std::path::PathBuf>,
}

pub fn run(_args: BenchArgs) -> i32 {
    eprintln!("lsmfs bench: not yet implemented");
    2
}
