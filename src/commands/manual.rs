//! `completions` and `man`: the shell completion scripts and the manual page,
//! generated from the same clap definition that parses the command line, so
//! they cannot drift from it. Packagers run them once at build time
//! (`scripts/package`) and install the output; neither reads a config.
//!
//! clap_mangen renders one page per command; operators expect one
//! `man masv-key-rotator` to answer for every command, so [`man_page`] renders
//! the top-level page and then a `COMMAND:` section per subcommand, with its
//! synopsis and its options.

use std::io::Write;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{Cli, CompletionShell};
use crate::exit::{CommandError, CommandResult, Exit};

const BIN: &str = "masv-key-rotator";

/// The command line as clap sees it once built (global options propagated to
/// every subcommand, bin names set), which is what both generators read.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command().bin_name(BIN);
    cmd.build();
    cmd
}

/// The subcommands that get a section of their own in the man page: every
/// visible one except clap's `help`, which only repeats this page.
pub fn documented_subcommands(cmd: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
}

/// The completion script for `shell`.
pub fn completion_script(shell: CompletionShell) -> Vec<u8> {
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    out
}

/// The whole manual page: clap_mangen's page for the program, then for each
/// subcommand a `COMMAND: <name>` section with its description, its synopsis
/// and its options (clap_mangen's own sections for that subcommand, demoted
/// from `.SH` to `.SS`).
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = command();
    let mut out = Vec::new();
    let page = clap_mangen::Man::new(cmd.clone()).title(BIN.to_uppercase());
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;
    page.render_options_section(&mut out)?;
    // clap_mangen's own list points at one page per subcommand
    // (masv-key-rotator-once(1)), which is not how this page is laid out.
    writeln!(out, ".SH COMMANDS")?;
    for sub in documented_subcommands(&cmd) {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        writeln!(
            out,
            ".TP\n\\fB{}\\fR\n{} (see \\fBCOMMAND: {}\\fR below)",
            roff_escape(sub.get_name()),
            roff_escape(&about),
            roff_escape(&sub.get_name().to_uppercase()),
        )?;
    }
    for sub in documented_subcommands(&cmd) {
        let name = sub.get_name();
        writeln!(
            out,
            ".SH \"COMMAND: {}\"",
            roff_escape(&name.to_uppercase())
        )?;
        let sub_page = clap_mangen::Man::new(sub.clone());
        let mut section = Vec::new();
        sub_page.render_description_section(&mut section)?;
        sub_page.render_synopsis_section(&mut section)?;
        sub_page.render_options_section(&mut section)?;
        out.extend(demote_headings(&section));
    }
    out.extend(EXIT_STATUS.as_bytes());
    out.extend(FILES.as_bytes());
    page.render_version_section(&mut out)?;
    Ok(out)
}

/// Text for a roff line: hyphens as `\-` (so they stay ASCII minus signs
/// that can be searched and pasted), backslashes doubled, and a leading
/// `.` or `'` kept from being read as a request.
fn roff_escape(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// Inside a command's section its own headings become subsection headings
/// (`.SS`), in title case: `.SH OPTIONS` -> `.SS Options`.
fn demote_headings(roff: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(roff);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        match line.strip_prefix(".SH ") {
            Some(heading) => {
                let heading = heading.trim_matches('"').to_lowercase();
                let mut chars = heading.chars();
                let titled: String = chars
                    .next()
                    .map(|c| c.to_uppercase().chain(chars).collect())
                    .unwrap_or_default();
                out.push_str(&format!(".SS \"{titled}\"\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.into_bytes()
}

const EXIT_STATUS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success (nothing due is success).
.TP
\fB1\fR
An action failed; the others still ran. For \fBhistory \-\-verify\fR: the hash chain or its anchor in Vault does not match.
.TP
\fB2\fR
Bad usage or configuration; nothing was changed.
.TP
\fB3\fR
MASV or Vault could not be reached.
.TP
\fB4\fR
Another instance holds the database's lock (or, with [ha], kept the leader lease).
"#;

const FILES: &str = r#".SH FILES
.TP
\fI/etc/masv\-key\-rotator/config.toml\fR
The configuration, unless \fB\-\-config\fR or \fBMASV_KEY_ROTATOR_CONFIG\fR names another.
.TP
\fI/var/lib/masv\-key\-rotator/state.db\fR
The SQLite state and hash\-chained audit log (the default \fBdatabase.path\fR).
"#;

/// `completions <shell>`: the script on stdout.
pub fn completions(shell: CompletionShell) -> CommandResult {
    write_stdout(&completion_script(shell))
}

/// `man`: the page on stdout.
pub fn man() -> CommandResult {
    let page = man_page()
        .map_err(|e| CommandError::failed(format_args!("cannot render the man page: {e}")))?;
    write_stdout(&page)
}

fn write_stdout(bytes: &[u8]) -> CommandResult {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| CommandError::failed(format_args!("cannot write to stdout: {e}")))?;
    Ok(Exit::Success)
}
