# rules of the attacks stage (owned by its issue); see rules/common.smk for path helpers
