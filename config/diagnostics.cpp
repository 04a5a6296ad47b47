// placeholder: implemented by the config work
