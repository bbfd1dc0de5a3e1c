fn main() {
    preflight_runtime::build::watch("migrations");
    preflight_runtime::build::watch("migrations-sqlite");
}
