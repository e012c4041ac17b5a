module runbook.dev/runtime-setpriv

go 1.22
