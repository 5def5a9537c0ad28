pub fn run() -> convt::Result<()> { Ok(()) }
