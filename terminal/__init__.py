"""Reference eligibility terminal (資格確認端末 stand-in): subscribes to readers, shows results."""
