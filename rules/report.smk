# rules of the report stage (owned by its issue); see rules/common.smk for path helpers
