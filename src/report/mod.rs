//! Report files: report.json, intervals.hlog, summary.txt, report.html; compare and merge.
