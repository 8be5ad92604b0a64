"""The built-in policy. It is also the commented starter file ``modelshield policy init`` writes,
so the defaults and the documentation of the format can never drift apart."""

from __future__ import annotations

STARTER = """\
# modelshield policy. JSON Schema: `modelshield policy show --schema`.
# Check a model:   modelshield policy check MODEL --policy this-file.yaml [--profile NAME]
# Gate a scan:     modelshield scan MODEL --policy this-file.yaml
version: 1

# The profile used when no selection rule below matches. `--profile NAME` overrides both.
default_profile: internal

# Pick a profile from what the scan learned about the model; the first matching rule wins.
# Facts: executes_code_at_load, remote_code, pickle, chat_template (true/false),
#        size_over ("2GB"), publisher_in, license_in, format_in (lists of globs),
#        any_of (a list of such conditions). All facts given in one `when` must hold.
profile_selection:
  - profile: production          # shipped Python code gets production-grade review
    when: {remote_code: true}

# Each profile lists rules; all must pass. Rule kinds (one per list item):
#   max_severity: LEVEL              no finding above LEVEL (coverage gaps count: fail closed)
#   cve: {max_severity: LEVEL}       no CVE finding above LEVEL
#   allowed_formats / denied_formats: [globs]   e.g. no pickle in production
#   remote_code: {allow: BOOL, pinned_sha256: [digests]}   remote code only with pinned hashes
#   signature_required: {trusted_keys: [ids]}   a verified signature by a trusted key
#   attestation_required: {max_age_days: N}     a scan attestation fresher than N days
#   allowed_publishers / allowed_licenses: [globs]
#   dynamic_scan_required: BOOL      coverage_complete: BOOL
#   all_of: [rules]   any_of: [rules]   compose rules
# LEVEL is one of info, low, medium, high, critical.
profiles:
  experimental:
    description: Research sandboxes; only critical problems block.
    rules:
      - max_severity: high
  internal:
    description: Internal tools used by trusted teams.
    rules:
      - max_severity: medium
      - cve: {max_severity: medium}
  production:
    description: Serving users; no code-executing formats, complete coverage.
    rules:
      - max_severity: low
      - cve: {max_severity: low}
      - denied_formats: ["pickle*", "torch*", "pytorch*", "joblib*", "dill*", "keras-h5"]
      - remote_code: {allow: false}
      - coverage_complete: true
  regulated:
    description: Regulated workloads; production plus provenance and a dynamic scan.
    rules:
      - max_severity: low
      - cve: {max_severity: low}
      - denied_formats: ["pickle*", "torch*", "pytorch*", "joblib*", "dill*", "keras-h5"]
      - remote_code: {allow: false}
      - coverage_complete: true
      - any_of:
          - signature_required: {trusted_keys: []}
          - attestation_required: {max_age_days: 30}
      - allowed_licenses: [apache-2.0, mit, bsd-3-clause, cc-by-4.0]
      - dynamic_scan_required: true

# Waive a finding (rule id such as VULN-LOADER, or an advisory id such as CVE-2025-32434) or a
# policy rule (such as denied_formats) for matching models, until the expiry date. An expired
# waiver no longer applies and is reported as a finding itself.
#   - rule: denied_formats
#     model: "models/legacy-*.pt"      # glob on scanned paths, or sha256:<digest>
#     owner: ml-platform@example.com
#     reason: legacy checkpoint, conversion to safetensors tracked in TICKET-123
#     expires: 2027-03-31
waivers: []
"""
