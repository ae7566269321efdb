//! `latchkey man DIR` (hidden): writes the man pages, rendered by `clap_mangen` from the very
//! definitions the binary parses its arguments with, so a page cannot say what the binary does
//! not do: `latchkey.1` and one page per subcommand (`latchkey-rule-add.1`, …). The .deb ships
//! them in /usr/share/man/man1/.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::error::Error;

/// Writes every page into `dir` (created if missing); returns their paths.
pub fn write_pages(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut cmd = super::Cli::command();
    // Gives every subcommand its full name (`latchkey-rule-add`) and usage line.
    cmd.build();
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let mut written = Vec::new();
    write_tree(&cmd, dir, &mut written)?;
    Ok(written)
}

fn write_tree(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<(), Error> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .map_err(|e| Error::io(format!("cannot render the man page of {name}"), e))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, page)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    written.push(path);
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        write_tree(sub, dir, written)?;
    }
    Ok(())
}

pub fn run(dir: &Path) -> Result<(), Error> {
    for path in write_pages(dir)? {
        out!("{}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_for_the_binary_and_every_subcommand() {
        let dir = std::env::temp_dir().join(format!("latchkey-man-{}", std::process::id()));
        let written = write_pages(&dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "latchkey.1",
            "latchkey-serve.1",
            "latchkey-rule-add.1",
            "latchkey-keys-rotate.1",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("man") || n.contains("help")),
            "{names:?}"
        );
        let top = std::fs::read_to_string(dir.join("latchkey.1")).unwrap();
        assert!(
            top.starts_with(".ie"),
            "roff: {}",
            &top[..80.min(top.len())]
        );
        assert!(
            top.contains("latchkey\\-rule(1)"),
            "names its subcommands' pages"
        );
        let add = std::fs::read_to_string(dir.join("latchkey-rule-add.1")).unwrap();
        assert!(add.contains("allow\\-group"), "the flags are on the page");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
