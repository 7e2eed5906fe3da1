"""Reports on a compiled spec: the summary as data (`summary`: params, MACs, memory, receptive
field; `summarize_spec` is where every report starts), its rendering (`formatting`), two specs
side by side (`diff`), one spec at several input sizes (`sizes`), and the pages generated from
the bundled specs (`zoo`: the model zoo and the README's table). Returns strings; never prints.
"""
