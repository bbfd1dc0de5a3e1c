fn main() {
    preflight::build::watch("migrations");
    preflight::build::watch("migrations-sqlite");
}
