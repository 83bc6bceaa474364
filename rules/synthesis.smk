# rules of the synthesis stage (owned by its issue); see rules/common.smk for path helpers
