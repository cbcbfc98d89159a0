"""The model loaders: gelu-4l and other TransformerLens models from the Hub, planted-4l, SmolLM2-135M."""
import warnings

# TransformerLens 3.9 warns on every HookedTransformer that it is deprecated and removed in 4.0. We use it knowingly:
# gelu-4l's own format (model_final.pth) and the planted and GGUF models are built as HookedTransformer; what 4.0
# will require of us is in docs/DESIGN.md ("TransformerLens 4.0"). Only that one message is silenced.
warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)
