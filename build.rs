fn main() {
    preflight_runtime::build::watch("migrations");
}
