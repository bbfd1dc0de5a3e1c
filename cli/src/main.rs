fn main() -> std::process::ExitCode {
    preflight_cli::main()
}
