//! `--sf FILE.xml` and the SIPp flags that go with it (`-s`, `-key`,
//! `-set`, `-inf`, `--recv-timeout`, `-trace_logs`, `-nr`): the scenario is
//! compiled here, once, so every refusal is a usage error (exit 2) naming
//! `FILE:LINE` before any socket exists.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{ConfigError, RunValues, invalid};
use crate::engine::UserSource;
use crate::engine::scenario::{CompileOptions, Program, Role, Shape, compile_file};
use crate::users::Users;

/// A compiled scenario and what the run adds to it.
#[derive(Debug, Clone)]
pub struct ScenarioFileConfig {
    pub program: Arc<Program>,
    /// `-s`: `[service]` (default `service`, as SIPp).
    pub service: String,
    /// The further `-inf` files, in the order the program names them.
    pub inf: Vec<Arc<UserSource>>,
    /// `serve`: the first `-inf` file (`[fieldN]`); `run` has its users.
    pub users: Option<Arc<UserSource>>,
    /// `-trace_logs`: where `<log>` lines go (`<name>_<pid>_logs.log`, as SIPp).
    pub trace_logs: bool,
    /// `-nr`.
    pub no_retrans: bool,
}

impl ScenarioFileConfig {
    /// What the report's `config.scenario_file` says.
    pub fn to_json(&self) -> serde_json::Value {
        let p = &self.program;
        serde_json::json!({
            "file": p.file,
            "name": p.name,
            "role": p.role.name(),
            "steps": p.steps(),
            "service": self.service,
            "trace_logs": self.trace_logs,
            "no_retrans": self.no_retrans,
        })
    }

    /// The `<log>` file of this process (SIPp's `<scenario>_<pid>_logs.log`).
    pub fn log_path(&self, pid: u32) -> Option<PathBuf> {
        self.trace_logs.then(|| {
            let stem = Path::new(&self.program.file)
                .file_stem()
                .map_or("scenario".into(), |s| s.to_string_lossy().into_owned());
            PathBuf::from(format!("{stem}_{pid}_logs.log"))
        })
    }

    /// Which RFC 6076 view the flow has (`call`, `register`, `none`).
    pub fn rfc6076(&self) -> &'static str {
        match self.program.shape {
            Shape::Call => "call",
            Shape::Register => "register",
            Shape::Other => "none",
        }
    }
}

/// A users file as the engine reads it.
pub(crate) fn user_lines(u: &Users) -> UserSource {
    UserSource::lines(
        u.users
            .iter()
            .map(|u| crate::engine::ListUser {
                fields: u.fields.clone(),
                auth_name: u.auth_name.clone(),
                password: u.password.expose().to_string(),
            })
            .collect(),
    )
}

/// The scenario's raw values, as flags or a profile give them.
pub(crate) struct ScenarioValues<'a> {
    pub file: &'a Path,
    pub service: Option<&'a str>,
    pub keys: Vec<(String, String)>,
    pub sets: Vec<(String, String)>,
    /// The users file (first `-inf`) and the further `-inf` files.
    pub users_file: Option<&'a Path>,
    pub inf: &'a [PathBuf],
    pub recv_timeout: Option<&'a str>,
    pub trace_logs: bool,
    pub no_retrans: bool,
}

/// Compile a scenario for `role` (`run` needs a client scenario, `serve`
/// a server one).
pub(crate) fn build(v: ScenarioValues<'_>, role: Role) -> Result<ScenarioFileConfig, ConfigError> {
    let recv_timeout = v
        .recv_timeout
        .map(|t| {
            crate::schedule::parse_duration(t).map_err(|e| invalid("--recv-timeout", e.to_string()))
        })
        .transpose()?
        .filter(|d| *d > Duration::ZERO);
    // A server has no --users: its first -inf is file 0.
    let (users_file, extra) = match (v.users_file, role, v.inf.split_first()) {
        (None, Role::Uas, Some((first, rest))) => (Some(first.as_path()), rest),
        (u, _, _) => (u, v.inf),
    };
    let mut inf_files: Vec<String> = Vec::new();
    inf_files.extend(users_file.map(|p| p.display().to_string()));
    inf_files.extend(extra.iter().map(|p| p.display().to_string()));
    let opts = CompileOptions {
        keys: v.keys,
        sets: v.sets,
        inf_files,
        recv_timeout,
    };
    let program =
        compile_file(v.file, &opts).map_err(|e| ConfigError::Unsupported(e.to_string()))?;
    for w in &program.warnings {
        crate::say!("sipstorm: warning: {w}");
    }
    match (role, program.role) {
        (Role::Uac, Role::Uas) => {
            return Err(ConfigError::Unsupported(format!(
                "{}: a server (UAS) scenario (its first message step is a <recv>): run it with `sipstorm serve --sf {}`",
                program.file, program.file
            )));
        }
        (Role::Uas, Role::Uac) => {
            return Err(ConfigError::Unsupported(format!(
                "{}: a client (UAC) scenario (its first message step is a <send>): run it with `sipstorm run --sf {}`",
                program.file, program.file
            )));
        }
        _ => {}
    }
    let mut inf = Vec::new();
    for name in program.inf_names() {
        let u = Users::load(Path::new(name)).map_err(|e| invalid("-inf", e.to_string()))?;
        inf.push(Arc::new(user_lines(&u)));
    }
    let users = match (role, users_file) {
        (Role::Uas, Some(p)) => {
            let u = Users::load(p).map_err(|e| invalid("-inf", e.to_string()))?;
            Some(Arc::new(user_lines(&u)))
        }
        _ => None,
    };
    Ok(ScenarioFileConfig {
        users,
        program: Arc::new(program),
        service: v.service.unwrap_or("service").to_string(),
        inf,
        trace_logs: v.trace_logs,
        no_retrans: v.no_retrans,
    })
}

/// `run --sf`: the scenario, and the built-in scenario's flags refused
/// with it (they would have no effect).
pub(super) fn build_run(
    v: &RunValues,
    users: Option<&Users>,
) -> Result<Option<ScenarioFileConfig>, ConfigError> {
    let Some(file) = &v.scenario_file else {
        let sipp_only = [
            ("-s/--service", v.service.is_some()),
            ("-key", v.key.is_some()),
            ("-set", v.set.is_some()),
            ("--recv-timeout", v.recv_timeout.is_some()),
            ("-trace_logs", v.trace_logs == Some(true)),
            ("-nr", v.no_retrans == Some(true)),
            ("-inf", v.inf.as_ref().is_some_and(|l| !l.is_empty())),
        ];
        if let Some((flag, _)) = sipp_only.iter().find(|(_, set)| *set) {
            return Err(invalid(flag, "only with a scenario file (--sf FILE.xml)"));
        }
        return Ok(None);
    };
    let conflicts = [
        ("--scenario", v.scenario.is_some()),
        ("--mix", v.mix.is_some()),
        ("--cancel-ratio", v.cancel_ratio.is_some()),
        ("--callee", v.callee.is_some()),
        ("--caller", v.caller.is_some()),
        ("--from-display", v.from_display.is_some()),
        ("--header", v.header.is_some()),
        ("--sdp", v.sdp.is_some()),
        ("--content-type", v.content_type.is_some()),
        ("--route", v.route.is_some()),
        ("--domain", v.domain.is_some()),
        ("--expires", v.expires.is_some()),
        ("--stages", v.stages.is_some()),
    ];
    if let Some((flag, _)) = conflicts.iter().find(|(_, set)| *set) {
        return Err(invalid(
            flag,
            "has no effect with --sf: the scenario file writes every message itself",
        ));
    }
    let _ = users;
    let pairs = |m: &Option<std::collections::BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    build(
        ScenarioValues {
            file: file.as_path(),
            service: v.service.as_deref(),
            keys: pairs(&v.key),
            sets: pairs(&v.set),
            users_file: v.users.as_deref(),
            inf: v.inf.as_deref().unwrap_or_default(),
            recv_timeout: v.recv_timeout.as_deref(),
            trace_logs: v.trace_logs == Some(true),
            no_retrans: v.no_retrans == Some(true),
        },
        Role::Uac,
    )
    .map(Some)
}
