-- A task's warnings and the NIC inventory of a facts task, for the report.
-- warnings: the result's warnings as a JSON list of strings; NULL when it had none.
-- nics: the hardware NICs a facts task found (name, driver, versions, bus, PCIe link,
-- SR-IOV; history.NIC) as a JSON list; NULL for every other task, and for every task
-- recorded before this migration.

ALTER TABLE task_results ADD COLUMN warnings TEXT;
ALTER TABLE task_results ADD COLUMN nics TEXT;
